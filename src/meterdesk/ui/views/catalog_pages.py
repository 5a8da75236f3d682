"""Units and plans: the units list, and a plan editor that validates as you type with the domain's rules."""

from __future__ import annotations

import re
from decimal import Decimal

from PySide6.QtCore import QItemSelectionModel, QModelIndex, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHeaderView,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from meterdesk.domain.errors import InvalidInput, MeterdeskError
from meterdesk.domain.money import parse_decimal
from meterdesk.domain.plans import Plan, PricingModel, plan_from_dict
from meterdesk.domain.pricing import usage_line
from meterdesk.services.catalog import PlanInfo, save_plan
from meterdesk.ui.desk import Catalog, Desk
from meterdesk.ui.formatting import money_text, quantity_text
from meterdesk.ui.models.base import RawSortProxy
from meterdesk.ui.models.catalog import PlansModel, TierDraft, TierTableModel, UnitsModel
from meterdesk.ui.widgets import error_label, setup_table

MODEL_HELP = {
    "per_unit": "Per unit: billable × unit price",
    "graduated": "Graduated: each tier prices the units inside it; a tier's flat fee is due once it is entered",
    "volume": "Volume: the tier the whole quantity falls in prices every unit, plus its flat fee",
    "package": "Package: billable rounded up to whole packages × package price",
}
PATH_RE = re.compile(r"charges\[(\d+)\](?:\.(\w+))?(?:\[(\d+)\](?:\.(\w+))?)?")
# The plan file's keys, as the form labels them: the domain's messages name the keys of the file.
FIELD_LABELS = {
    "up_to": "Up to", "unit_price": "Unit price", "flat_fee": "Flat fee", "package_size": "Package size",
    "package_price": "Package price", "base_fee": "Base fee", "included": "Included per period", "unit": "Unit",
    "model": "Pricing model", "tiers": "Tiers", "code": "Code", "name": "Name", "currency": "Currency",
}
_FILE_ONLY = re.compile(r" \((?:null in JSON|\[\[charges\]\] tables in TOML)\)")


def form_words(problem: str) -> str:
    """A domain message about a plan file, in the words of the form: “Up to”, not up_to."""
    text = _FILE_ONLY.sub("", problem)
    return re.sub(r"\b(up_to|unit_price|flat_fee|package_size|package_price|base_fee)\b",
                  lambda match: f"“{FIELD_LABELS[match[1]]}”", text)


class UnitsPage(QWidget):
    define_requested = Signal()

    def __init__(self, desk: Desk, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = UnitsModel(self)
        self.proxy = RawSortProxy(self)
        self.proxy.setSourceModel(self.model)
        self.table = QTableView()
        setup_table(self.table)
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.table.setColumnWidth(0, 160)
        self.table.setColumnWidth(1, 240)
        self.table.setColumnWidth(2, 90)
        define = QPushButton("Define unit…")
        define.setToolTip("Add a billable unit (metric) such as api_calls or seats")
        define.clicked.connect(self.define_requested)
        intro = QLabel("Units are what your product meters. A plan prices each unit with one charge; "
                       "a unit's decimals and aggregation are fixed once defined.")
        intro.setWordWrap(True)
        intro.setStyleSheet("color: #555;")
        top = QHBoxLayout()
        top.addWidget(intro, 1)
        top.addWidget(define)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        desk.catalog_changed.connect(lambda catalog: self.model.set_rows(catalog.units))
        self.model.set_rows(desk.catalog.units)


class ChargeEditor(QWidget):
    """The fields of one charge; which are shown depends on the pricing model."""

    edited = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.unit = QComboBox()
        self.model = QComboBox()
        for model in PricingModel:
            self.model.addItem(MODEL_HELP[model.value].split(":")[0], model.value)
        self.model_help = QLabel()
        self.model_help.setWordWrap(True)
        self.model_help.setStyleSheet("color: #555;")
        self.included = QLineEdit()
        self.included.setPlaceholderText("0")
        self.included.setToolTip("Free quantity per period; the charge prices only what lies above it")
        self.unit_price = QLineEdit()
        self.package_size = QLineEdit()
        self.package_price = QLineEdit()
        self.tiers = TierTableModel(self)
        self.tier_view = QTableView()
        setup_table(self.tier_view)
        self.tier_view.verticalHeader().setVisible(True)
        self.tier_view.setModel(self.tiers)
        self.tier_view.setEditTriggers(QAbstractItemView.EditTrigger.AllEditTriggers)
        self.tier_view.setMinimumHeight(130)
        self.tier_view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        add_tier = QPushButton("Add tier")
        add_tier.clicked.connect(self.tiers.add_tier)
        remove_tier = QPushButton("Remove tier")
        remove_tier.clicked.connect(lambda: self.tiers.remove_tier(self.tier_view.currentIndex().row()))
        tier_buttons = QHBoxLayout()
        tier_buttons.addWidget(add_tier)
        tier_buttons.addWidget(remove_tier)
        tier_buttons.addStretch(1)
        self.tier_box = QWidget()
        tier_layout = QVBoxLayout(self.tier_box)
        tier_layout.setContentsMargins(0, 0, 0, 0)
        tier_layout.addWidget(self.tier_view)
        tier_layout.addLayout(tier_buttons)
        self.sample = QLineEdit("10000")
        self.sample.setToolTip("A period quantity to price with this charge")
        self.preview = QLabel()
        self.preview.setWordWrap(True)

        self.errors = {name: error_label() for name in ("unit", "model", "included", "unit_price", "package_size", "package_price", "tiers", "sample")}
        self.form = QFormLayout(self)
        self.form.setContentsMargins(0, 0, 0, 0)
        self._rows: dict[str, list[QWidget]] = {}
        for name, label, widget in (
            ("unit", "Unit", self.unit),
            ("model", "Pricing model", self.model),
            ("model_help", "", self.model_help),
            ("included", "Included per period", self.included),
            ("unit_price", "Unit price", self.unit_price),
            ("package_size", "Package size", self.package_size),
            ("package_price", "Package price", self.package_price),
            ("tiers", "Tiers", self.tier_box),
            ("sample", "Price preview for", self.sample),
            ("preview", "", self.preview),
        ):
            label_widget = QLabel(label)
            self.form.addRow(label_widget, widget)
            self._rows[name] = [label_widget, widget]
            if name in self.errors:
                self.form.addRow("", self.errors[name])
        for widget in (self.included, self.unit_price, self.package_size, self.package_price, self.sample):
            widget.textChanged.connect(self.edited)
        self.unit.currentIndexChanged.connect(lambda _i: self.edited.emit())
        self.model.currentIndexChanged.connect(lambda _i: self._model_changed())
        self.tiers.edited.connect(self.edited)
        self._model_changed(emit=False)

    def set_units(self, catalog: Catalog) -> None:
        current = self.unit.currentData()
        self.unit.blockSignals(True)
        self.unit.clear()
        for row in catalog.units:
            self.unit.addItem(f"{row.unit.name} ({row.code})", row.code)
        self.unit.setCurrentIndex(max(0, self.unit.findData(current)))
        self.unit.blockSignals(False)

    def _model_changed(self, emit: bool = True) -> None:
        model = self.model.currentData()
        self.model_help.setText(MODEL_HELP[model])
        for name in ("unit_price",):
            self._show(name, model == "per_unit")
        for name in ("package_size", "package_price"):
            self._show(name, model == "package")
        self._show("tiers", model in ("graduated", "volume"))
        if model in ("graduated", "volume") and self.tiers.rowCount() == 0:
            self.tiers.set_tiers([TierDraft("1000", "0.01"), TierDraft("", "0.005")])
        if emit:
            self.edited.emit()

    def _show(self, name: str, visible: bool) -> None:
        for widget in self._rows[name]:
            widget.setVisible(visible)
        if not visible and name in self.errors:
            self.errors[name].setVisible(False)

    def load(self, draft: dict) -> None:
        for widget in (self.unit, self.model, self.included, self.unit_price, self.package_size, self.package_price, self.sample):
            widget.blockSignals(True)
        self.tiers.blockSignals(True)
        if self.unit.findData(draft.get("unit")) < 0 and draft.get("unit"):
            self.unit.addItem(draft["unit"], draft["unit"])
        self.unit.setCurrentIndex(max(0, self.unit.findData(draft.get("unit"))))
        self.model.setCurrentIndex(max(0, self.model.findData(draft.get("model", "per_unit"))))
        self.included.setText(draft.get("included", ""))
        self.unit_price.setText(draft.get("unit_price", ""))
        self.package_size.setText(draft.get("package_size", ""))
        self.package_price.setText(draft.get("package_price", ""))
        self.sample.setText(draft.get("sample", "10000"))
        self.tiers.blockSignals(False)
        self.tiers.set_tiers(draft.get("tiers", []))
        for widget in (self.unit, self.model, self.included, self.unit_price, self.package_size, self.package_price, self.sample):
            widget.blockSignals(False)
        self._model_changed(emit=False)

    def draft(self) -> dict:
        return {
            "unit": self.unit.currentData() or "",
            "model": self.model.currentData(),
            "included": self.included.text().strip(),
            "unit_price": self.unit_price.text().strip(),
            "package_size": self.package_size.text().strip(),
            "package_price": self.package_price.text().strip(),
            "tiers": self.tiers.tiers(),
            "sample": self.sample.text().strip(),
        }

    def clear_errors(self) -> None:
        for label in self.errors.values():
            label.setVisible(False)
        self.tiers.set_error(None, None, None)

    def show_error(self, field: str | None, tier: int | None, tier_field: str | None, problem: str) -> None:
        if tier is not None:
            column = {"up_to": 0, "unit_price": 1, "flat_fee": 2}.get(tier_field or "", 0)
            self.tiers.set_error(tier, column, problem)
            self.errors["tiers"].setText(f"Tier {tier + 1}{', ' + FIELD_LABELS.get(tier_field, tier_field) if tier_field else ''}: {form_words(problem)}")
            self.errors["tiers"].setVisible(True)
            return
        label = self.errors.get(field or "tiers") or self.errors["tiers"]
        label.setText(form_words(problem))
        label.setVisible(True)


def draft_to_dict(draft: dict) -> dict:
    """A charge as typed -> the plan file shape plan_from_dict validates (only its model's keys)."""
    shape: dict = {"unit": draft["unit"], "model": draft["model"]}
    if draft["included"]:
        shape["included"] = draft["included"]
    if draft["model"] == "per_unit":
        shape["unit_price"] = draft["unit_price"] or None
    elif draft["model"] == "package":
        shape["package_size"] = draft["package_size"] or None
        shape["package_price"] = draft["package_price"] or None
    else:
        model = TierTableModel()
        model.set_tiers(draft["tiers"])
        shape["tiers"] = model.as_dicts()
    return shape


def plan_to_drafts(plan: Plan) -> list[dict]:
    drafts = []
    for charge in plan.charges:
        text = lambda v: "" if v is None else format(v, "f")  # noqa: E731
        drafts.append({
            "unit": charge.unit,
            "model": charge.model.value,
            "included": text(charge.included) if charge.included else "",
            "unit_price": text(charge.unit_price),
            "package_size": text(charge.package_size),
            "package_price": text(charge.package_price),
            "tiers": [TierDraft(text(t.up_to), text(t.unit_price), text(t.flat_fee) if t.flat_fee else "") for t in charge.tiers],
            "sample": _sample_quantity(charge),
        })
    return drafts


def _sample_quantity(charge) -> str:
    """A quantity worth previewing: into the second tier, or twice the allowance, or 100."""
    if charge.tiers and charge.tiers[0].up_to is not None:
        sample = charge.included + charge.tiers[0].up_to + charge.tiers[0].up_to / 10
    elif charge.package_size:
        sample = charge.included + charge.package_size * 3
    else:
        sample = charge.included * 2 if charge.included else Decimal(100)
    return format(sample.normalize(), "f") if sample == sample.to_integral_value() else format(sample, "f")


class PlanEditor(QWidget):
    """Edits one plan; every keystroke re-validates the whole plan with plan_from_dict."""

    saved = Signal(object)  # PlanInfo
    save_failed = Signal()

    def __init__(self, desk: Desk, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.desk = desk
        self.plan: Plan | None = None
        self.original: PlanInfo | None = None
        self.drafts: list[dict] = []
        self.current = -1
        self._saving = False
        self._loaded: dict = {}  # plan_dict() as loaded: anything else is an unsaved edit
        # A new plan's fields show their errors once edited (or on saving), not while the form is blank.
        self._touched: set[str] = set()

        self.title = QLabel("<b>New plan</b>")
        self.code = QLineEdit()
        self.code.setPlaceholderText("e.g. pro")
        self.name = QLineEdit()
        self.currency = QComboBox()
        self.currency.setEditable(True)
        self.currency.addItems(["EUR", "USD", "GBP", "CHF", "JPY", "SEK", "DKK", "NOK", "PLN", "CAD", "AUD"])
        self.base_fee = QLineEdit("0")
        self.base_fee.setToolTip("Fixed fee per month (may be 0); prorated by days when a subscription starts or ends inside a period")
        self.errors = {name: error_label() for name in ("code", "name", "currency", "base_fee", "charges")}
        form = QFormLayout()
        for name, label, widget in (("code", "Code", self.code), ("name", "Name", self.name), ("currency", "Currency", self.currency), ("base_fee", "Base fee per month", self.base_fee)):
            form.addRow(label, widget)
            form.addRow("", self.errors[name])

        self.charges = QListWidget()
        self.charges.setMaximumHeight(76)
        self.charges.currentRowChanged.connect(self._charge_selected)
        add_charge = QPushButton("Add charge")
        add_charge.clicked.connect(self.add_charge)
        remove_charge = QPushButton("Remove charge")
        remove_charge.clicked.connect(self.remove_charge)
        charge_buttons = QHBoxLayout()
        charge_buttons.addWidget(add_charge)
        charge_buttons.addWidget(remove_charge)
        charge_buttons.addStretch(1)
        self.charge_editor = ChargeEditor()
        self.charge_editor.edited.connect(self._charge_edited)
        charges_box = QGroupBox("Usage charges (one per unit)")
        charges_layout = QVBoxLayout(charges_box)
        charges_layout.addWidget(self.charges)
        charges_layout.addLayout(charge_buttons)
        charges_layout.addWidget(self.errors["charges"])
        charges_layout.addWidget(self.charge_editor)

        self.total_preview = QLabel()
        self.total_preview.setWordWrap(True)
        self.save_note = QLabel()
        self.save_note.setWordWrap(True)
        self.save_note.setStyleSheet("color: #555;")
        self.save_button = QPushButton("Save plan")
        self.save_button.clicked.connect(self.save)
        self.revert_button = QPushButton("Revert")
        self.revert_button.clicked.connect(lambda: self.load(self.original))
        bottom = QHBoxLayout()
        bottom.addWidget(self.save_note, 1)
        bottom.addWidget(self.revert_button)
        bottom.addWidget(self.save_button)

        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addLayout(form)
        layout.addWidget(charges_box)
        layout.addWidget(self.total_preview)
        layout.addLayout(bottom)
        layout.addStretch(1)
        for name, widget in (("code", self.code), ("name", self.name), ("base_fee", self.base_fee)):
            widget.textChanged.connect(lambda _text, field=name: self._touch(field))
        self.currency.currentTextChanged.connect(lambda _text: self._touch("currency"))
        desk.catalog_changed.connect(self.charge_editor.set_units)
        self.charge_editor.set_units(desk.catalog)
        self.load(None)

    # -- loading ---------------------------------------------------------------------------------------
    def load(self, info: PlanInfo | None) -> None:
        self.original = info
        plan = info.plan if info else None
        for widget in (self.code, self.name, self.base_fee):
            widget.blockSignals(True)
        self.currency.blockSignals(True)
        self.code.setText(plan.code if plan else "")
        self.code.setReadOnly(plan is not None)
        self.name.setText(plan.name if plan else "")
        self.currency.setCurrentText(plan.currency if plan else "EUR")
        self.currency.setEnabled(plan is None)
        self.base_fee.setText(format(plan.base_fee, "f") if plan else "0")
        for widget in (self.code, self.name, self.base_fee):
            widget.blockSignals(False)
        self.currency.blockSignals(False)
        self.drafts = plan_to_drafts(plan) if plan else []
        self.current = -1
        if info is None:
            self.title.setText("<b>New plan</b>")
        else:
            self.title.setText(f"<b>{plan.name}</b> ({plan.code}) — version {info.version} of {info.versions}" + (" · in use" if info.in_use else ""))
        self._refresh_charge_list()
        self.charges.setCurrentRow(0 if self.drafts else -1)
        self._touched = set()
        self._loaded = self.plan_dict()
        self.validate()

    def has_unsaved_changes(self) -> bool:
        """Whether the form differs from the plan as loaded (a blank form, for a new plan)."""
        return self.plan_dict() != self._loaded

    def _touch(self, field: str) -> None:
        self._touched.add(field)
        self.validate()

    def add_charge(self) -> None:
        used = {d["unit"] for d in self.drafts}
        unit = next((u.code for u in self.desk.catalog.units if u.code not in used), "")
        self.drafts.append({"unit": unit, "model": "per_unit", "included": "", "unit_price": "0.01", "package_size": "", "package_price": "", "tiers": [], "sample": "10000"})
        self._refresh_charge_list()
        self.charges.setCurrentRow(len(self.drafts) - 1)
        self._touch("charges")

    def remove_charge(self) -> None:
        row = self.charges.currentRow()
        if 0 <= row < len(self.drafts):
            del self.drafts[row]
            self.current = -1
            self._refresh_charge_list()
            self.charges.setCurrentRow(min(row, len(self.drafts) - 1))
            self._touch("charges")

    def _refresh_charge_list(self) -> None:
        self.charges.blockSignals(True)
        current = self.charges.currentRow()
        self.charges.clear()
        for draft in self.drafts:
            QListWidgetItem(f"{draft['unit'] or '(choose a unit)'} — {MODEL_HELP[draft['model']].split(':')[0].lower()}", self.charges)
        self.charges.setCurrentRow(min(current, len(self.drafts) - 1))
        self.charges.blockSignals(False)
        self.charge_editor.setVisible(bool(self.drafts))

    def _charge_selected(self, row: int) -> None:
        self.current = row
        if 0 <= row < len(self.drafts):
            self.charge_editor.load(self.drafts[row])
        self.charge_editor.setVisible(0 <= row < len(self.drafts))
        self.validate()

    def _charge_edited(self) -> None:
        if 0 <= self.current < len(self.drafts):
            self.drafts[self.current] = self.charge_editor.draft()
            item = self.charges.item(self.current)
            draft = self.drafts[self.current]
            if item is not None:
                item.setText(f"{draft['unit'] or '(choose a unit)'} — {MODEL_HELP[draft['model']].split(':')[0].lower()}")
            self._touched.add("charges")
        self.validate()

    # -- validation ------------------------------------------------------------------------------------
    def plan_dict(self) -> dict:
        return {
            "code": self.code.text().strip(),
            "name": self.name.text().strip(),
            "currency": self.currency.currentText().strip().upper(),
            "base_fee": self.base_fee.text().strip() or "0",
            "charges": [draft_to_dict(d) for d in self.drafts],
        }

    def validate(self) -> bool:
        for label in self.errors.values():
            label.setVisible(False)
        self.charge_editor.clear_errors()
        for row in range(self.charges.count()):
            self.charges.item(row).setForeground(self.palette().text())
        waiting: InvalidInput | None = None  # a problem of a new plan's field not edited yet
        try:
            self.plan = plan_from_dict(self.plan_dict())
        except InvalidInput as error:
            self.plan = None
            if self.original is None and error.field.split(".")[0].split("[")[0] not in self._touched:
                waiting = error
            else:
                self._route(error)
        unchanged = self.original is not None and self.plan == self.original.plan
        self._preview()
        self.save_button.setEnabled(self.plan is not None and not unchanged and not self._saving and self.desk.ledger is not None)
        self.revert_button.setEnabled(self.original is not None and not unchanged)
        if waiting is not None:
            label = FIELD_LABELS.get(waiting.field.split(".")[-1].split("[")[0], "")
            self.save_note.setText(f"Fill in the {label.lower()} to save the plan." if label else "Fill in the plan to save it.")
        elif self.plan is None:
            self.save_note.setText("Fix the field marked in red to save.")
        elif unchanged:
            self.save_note.setText("No changes.")
        elif self.original is not None and self.original.in_use:
            self.save_note.setText("This plan has priced invoices or prepaid charges: saving makes a new version that prices periods from the next one on.")
        elif self.original is not None:
            self.save_note.setText("Not used yet: the new version applies at once.")
        else:
            self.save_note.setText("Ready to save.")
        return self.plan is not None

    def _route(self, error: InvalidInput) -> None:
        """Show the domain's message next to the field its path names (e.g. charges[1].tiers[0].up_to)."""
        match = PATH_RE.match(error.field)
        if not match:
            label = self.errors.get(error.field.split(".")[0], self.errors["charges"])
            label.setText(form_words(error.problem))
            label.setVisible(True)
            return
        index, field, tier, tier_field = int(match[1]), match[2], match[3], match[4]
        item = self.charges.item(index)
        if item is not None:
            item.setForeground(Qt.GlobalColor.red)
        if index == self.current:
            self.charge_editor.show_error(field, int(tier) if tier is not None else None, tier_field, error.problem)
        else:
            where = f"Charge {index + 1} ({self.drafts[index]['unit']})"
            if field:
                where += f", {FIELD_LABELS.get(field, field)}" + (f" of tier {int(tier) + 1}" if tier is not None else "")
                if tier_field:
                    where += f", {FIELD_LABELS.get(tier_field, tier_field)}"
            self.errors["charges"].setText(f"{where}: {form_words(error.problem)}")
            self.errors["charges"].setVisible(True)

    def _preview(self) -> None:
        if self.plan is None:
            self.charge_editor.preview.setText("")
            self.total_preview.setText("")
            return
        currency = self.plan.currency
        total = self.plan.base_fee
        parts = []
        for index, (draft, charge) in enumerate(zip(self.drafts, self.plan.charges)):
            try:
                quantity = parse_decimal(draft.get("sample") or "0", "sample", minimum=Decimal(0))
            except MeterdeskError as error:
                if index == self.current:
                    self.charge_editor.errors["sample"].setText(getattr(error, "problem", str(error)))
                    self.charge_editor.errors["sample"].setVisible(True)
                continue
            line = usage_line(charge, quantity, currency)
            total += line.amount
            parts.append(f"{charge.unit} {quantity_text(quantity)} → {money_text(line.amount, currency)}")
            if index == self.current:
                tiers = ""
                if line.tiers:
                    tiers = "<br>" + "<br>".join(
                        f"&nbsp;&nbsp;tier {t.index + 1}: {quantity_text(t.quantity)} × {t.unit_price}"
                        + (f" + {t.flat_fee}" if t.flat_fee else "") + f" = {quantity_text(t.amount)}"
                        for t in line.tiers
                    )
                self.charge_editor.preview.setText(f"<b>{money_text(line.amount, currency)}</b> — {line.description}{tiers}")
        self.total_preview.setText(
            f"<b>A period at these sample quantities:</b> base fee {money_text(self.plan.base_fee, currency)}"
            + (" + " + " + ".join(parts) if parts else "") + f" = <b>{money_text(total, currency)}</b>"
        )

    # -- saving ----------------------------------------------------------------------------------------
    def save(self) -> bool:
        """Start saving the plan on a worker; False when it cannot be saved as it stands (shown in red)."""
        self._touched.update(("code", "name", "currency", "base_fee", "charges"))
        if not self.validate() or self._saving:
            return False
        self._saving = True
        self.save_button.setEnabled(False)
        shape, actor = self.plan_dict(), self.desk.actor()
        self.desk.run(
            lambda ledger, job: save_plan(ledger, shape, actor=actor),
            on_done=self._saved,
            on_error=self._save_failed,
            description=f"saving plan {shape['code']}",
            owner=self,
        )
        return True

    def _saved(self, info: PlanInfo) -> None:
        self._saving = False
        self.load(info)
        self.saved.emit(info)
        self.desk.notify_written("catalog")

    def _save_failed(self, error: BaseException) -> None:
        self._saving = False
        if isinstance(error, InvalidInput):
            self._route(error)
        self.desk.failed.emit(error, "saving the plan")
        self.validate()
        self.save_failed.emit()


def unsaved_plan_box(parent: QWidget, editing: PlanInfo | None, next_code: str | None) -> QMessageBox:
    """Save / Discard / Cancel for the edits of the plan on screen, before another plan is opened."""
    what = f"plan {editing.plan.code}" if editing else "the new plan"
    going = f"plan {next_code}" if next_code else "a new plan"
    box = QMessageBox(QMessageBox.Icon.Question, "Unsaved plan changes",
                      f"Save your changes to {what} before opening {going}?", parent=parent)
    box.setInformativeText("Save keeps them (as a new version when the plan is in use), Discard drops them, "
                           "Cancel goes back to editing.")
    box.setStandardButtons(QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                           | QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(QMessageBox.StandardButton.Save)
    box.setEscapeButton(QMessageBox.StandardButton.Cancel)
    return box


class PlansPage(QWidget):
    """The plans list and the editor of the selected (or a new) plan."""

    def __init__(self, desk: Desk, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.desk = desk
        self.model = PlansModel(self)
        self.proxy = RawSortProxy(self)
        self.proxy.setSourceModel(self.model)
        self.table = QTableView()
        setup_table(self.table)
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        header = self.table.horizontalHeader()
        header.setStretchLastSection(False)
        for column in range(len(self.model.Column)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(self.model.Column.CHARGES, QHeaderView.ResizeMode.Stretch)
        self.table.selectionModel().currentRowChanged.connect(lambda current, _previous: self._selected(current))
        new_plan = QPushButton("New plan")
        new_plan.clicked.connect(self.new_plan)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.table, 1)
        left_layout.addWidget(new_plan, 0, Qt.AlignmentFlag.AlignLeft)
        self.editor = PlanEditor(desk)
        self.editor.saved.connect(self._saved)
        self.editor.save_failed.connect(self._forget_next)
        self._next: tuple[str | None] | None = None  # what to open once the save asked for is done
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.editor)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(scroll)
        splitter.setSizes([600, 640])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter)
        desk.catalog_changed.connect(self._catalog_changed)
        self._catalog_changed(desk.catalog)

    def _catalog_changed(self, catalog: Catalog) -> None:
        selected = self.editor.original.plan.code if self.editor.original else None
        self.model.set_rows(catalog.plans)
        if selected:
            self.select(selected)

    def select(self, code: str) -> None:
        for row in range(self.proxy.rowCount()):
            index = self.proxy.index(row, 0)
            if index.data() == code:
                self.table.setCurrentIndex(index)
                return

    def _selected(self, index) -> None:
        if index.isValid():
            info = self.model.row_at(self.proxy.mapToSource(index).row())
            if info is not None and (self.editor.original is None or self.editor.original.plan.code != info.plan.code or self.editor.original.version != info.version):
                if self._may_leave(info.plan.code):
                    self.editor.load(info)

    def new_plan(self) -> None:
        if not self._may_leave(None):
            return
        self._point_at(None)
        self.editor.load(None)
        self.editor.code.setFocus()

    def _may_leave(self, next_code: str | None) -> bool:
        """Whether the editor may show another plan: yes when nothing was edited or the edits are discarded.
        Saving opens `next_code` (None: a new plan) once saved; saving or cancelling keeps the edits on screen."""
        self._next = None
        if not self.editor.has_unsaved_changes():
            return True
        answer = unsaved_plan_box(self, self.editor.original, next_code).exec()
        if QMessageBox.StandardButton(answer) == QMessageBox.StandardButton.Discard:
            return True
        # The list was already moved to the plan clicked: point it back at the one being edited, once the
        # click that moved it is done with the selection.
        editing = self.editor.original.plan.code if self.editor.original else None
        QTimer.singleShot(0, self, lambda: self._point_at(editing))
        if QMessageBox.StandardButton(answer) == QMessageBox.StandardButton.Save and self.editor.save():
            self._next = (next_code,)
        return False

    def _point_at(self, code: str | None) -> None:
        if code is None:
            self.table.clearSelection()
            self.table.selectionModel().setCurrentIndex(QModelIndex(), QItemSelectionModel.SelectionFlag.Clear)
        else:
            self.select(code)

    def _forget_next(self) -> None:
        self._next = None

    def _saved(self, info: PlanInfo) -> None:
        if self._next is not None:
            (next_code,), self._next = self._next, None
            if next_code is None:
                self.new_plan()
            else:
                self.select(next_code)
        note = f"Saved plan {info.plan.code}, version {info.version}."
        if info.version > 1 and info.in_use:
            note += " It prices periods from the next one on; earlier periods keep the version they were priced by."
        self.desk.message.emit(note)

