"""Small forms: add or edit a customer, assign a plan, grant credits, define a unit.

Each form validates as typed with the services' own validators, submits on a worker, shows a refusal
under the form (nothing is written then) and closes on success.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date

from PySide6.QtCore import QDate, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDateEdit,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from meterdesk.domain.errors import MeterdeskError
from meterdesk.domain.money import parse_decimal
from meterdesk.domain.units import Unit, validate_unit_code
from meterdesk.services.catalog import (
    add_customer,
    add_unit,
    assign_plan,
    parse_credit_limit,
    update_customer,
    validate_customer_id,
    validate_email,
    validate_name,
)
from meterdesk.services.credits import grant_credits
from meterdesk.services.overview import CustomerOverview
from meterdesk.ui.desk import Desk
from meterdesk.ui.formatting import money_text
from meterdesk.ui.messages import explain
from meterdesk.ui.widgets import error_label


class FormDialog(QDialog):
    """A form with per-field error labels, OK enabled only when every check passes, work on a worker."""

    done = Signal(object)

    def __init__(self, desk: Desk, title: str, ok_text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.desk = desk
        self.setWindowTitle(title)
        self.setMinimumWidth(480)
        self.form = QFormLayout()
        self.errors: dict[str, QLabel] = {}
        self.checks: list[Callable[[], tuple[str, str | None]]] = []
        self.outcome = error_label()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok.setText(ok_text)
        self.buttons.accepted.connect(self.submit)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(self.form)
        layout.addWidget(self.outcome)
        layout.addWidget(self.buttons)
        self._in_flight = False
        self.result_value = None

    def add_field(self, name: str, label: str, widget: QWidget, check: Callable[[], str | None] | None = None, tip: str = "") -> None:
        if tip:
            widget.setToolTip(tip)
        self.form.addRow(label, widget)
        error = error_label()
        self.form.addRow("", error)
        self.errors[name] = error
        if check is not None:
            self.checks.append(lambda n=name, c=check: (n, c()))

    def validate(self) -> bool:
        ok = True
        for check in self.checks:
            name, problem = check()
            self.errors[name].setText(problem or "")
            self.errors[name].setVisible(bool(problem))
            ok = ok and not problem
        self.ok.setEnabled(ok and not self._in_flight)
        return ok

    @staticmethod
    def problem_of(validate: Callable[[], object]) -> str | None:
        try:
            validate()
        except MeterdeskError as error:
            return getattr(error, "problem", str(error))
        return None

    def work(self):  # -> Callable[[Ledger, Job], object]
        raise NotImplementedError

    def submit(self) -> None:
        if self._in_flight or not self.validate():
            return
        self._in_flight = True
        self.ok.setEnabled(False)
        self.outcome.setVisible(False)
        self.desk.run(self.work(), owner=self, on_done=self._done, on_error=self._failed, description=self.windowTitle().lower())

    def _done(self, value) -> None:
        self._in_flight = False
        self.result_value = value
        self.done.emit(value)
        self.accept()

    def _failed(self, error: BaseException) -> None:
        self._in_flight = False
        message, hint = explain(error)
        self.outcome.setText(f"{message}\n{hint}")
        self.outcome.setVisible(True)
        self.validate()


class CustomerDialog(FormDialog):
    """Add a customer (id, name, e-mail, plan, prepaid, credit limit, start) or edit name, e-mail and limit."""

    def __init__(self, desk: Desk, parent: QWidget | None = None, *, existing: CustomerOverview | None = None) -> None:
        super().__init__(desk, "Edit customer" if existing else "Add customer", "&Save" if existing else "&Add customer", parent)
        self.existing = existing
        self.customer_id = QLineEdit(existing.id if existing else "")
        self.customer_id.setReadOnly(existing is not None)
        self.name = QLineEdit(existing.name if existing else "")
        self.email = QLineEdit(existing.email or "" if existing else "")
        self.plan = QComboBox()
        for info in desk.catalog.plans:
            self.plan.addItem(f"{info.plan.name} ({info.plan.code}, {info.plan.currency})", info.plan.code)
        self.prepaid = QCheckBox("Prepaid: usage is charged to a credit balance as it is recorded")
        self.credit_limit = QLineEdit(format(existing.credit_limit.normalize(), "f") if existing else "0")
        self.start = QDateEdit(QDate.currentDate())
        self.start.setCalendarPopup(True)
        self.start.setDisplayFormat("yyyy-MM-dd")
        self.has_start = QCheckBox("Starts on a date (prorates the first base fee)")
        self.add_field("id", "Customer &id", self.customer_id, lambda: self.problem_of(lambda: validate_customer_id(self.customer_id.text())),
                       "The id your product reports usage with; it cannot change later")
        self.add_field("name", "&Name", self.name, lambda: self.problem_of(lambda: validate_name(self.name.text())))
        self.add_field("email", "&E-mail", self.email, lambda: self.problem_of(lambda: validate_email(self.email.text())))
        if existing is None:
            self.add_field("plan", "&Plan", self.plan, lambda: None if self.plan.count() else "Create a plan first (Plans page)")
            self.form.addRow("", self.prepaid)
            self.form.addRow("", self.has_start)
            self.add_field("start", "&Start", self.start)
            self.start.setEnabled(False)
            self.has_start.toggled.connect(self.start.setEnabled)
        self.add_field("credit_limit", "Credit &limit", self.credit_limit, lambda: self.problem_of(lambda: parse_credit_limit(self.credit_limit.text())),
                       "Prepaid only: how far below zero the balance may go before usage is reported over_limit")
        for widget in (self.customer_id, self.name, self.email, self.credit_limit):
            widget.textChanged.connect(self.validate)
        self.validate()

    def work(self):
        actor = self.desk.actor()
        customer_id, name, email, limit = self.customer_id.text(), self.name.text(), self.email.text(), self.credit_limit.text().strip()
        if self.existing is not None:
            return lambda ledger, job: update_customer(ledger, customer_id, name=name, email=email, credit_limit=limit, actor=actor)
        plan, prepaid = self.plan.currentData(), self.prepaid.isChecked()
        start = self.start.date().toPython() if self.has_start.isChecked() else None
        return lambda ledger, job: add_customer(
            ledger, customer_id, name, plan, email=email, prepaid=prepaid, credit_limit=limit, start=start, actor=actor
        )

    def _done(self, value) -> None:
        self.desk.notify_written("customers")
        super()._done(value)


class AssignPlanDialog(FormDialog):
    """Move a customer to another plan from a date (by default the first day of the next period)."""

    def __init__(self, desk: Desk, customer: CustomerOverview, parent: QWidget | None = None) -> None:
        super().__init__(desk, f"Assign a plan to {customer.id}", "&Assign plan", parent)
        self.customer = customer
        self.plan = QComboBox()
        for info in desk.catalog.plans:
            if info.plan.currency == customer.currency:
                self.plan.addItem(f"{info.plan.name} ({info.plan.code})", info.plan.code)
        self.plan.setCurrentIndex(max(0, self.plan.findData(customer.plan)))
        today = date.today()
        first_next = date(today.year + (today.month == 12), today.month % 12 + 1, 1)
        self.start = QDateEdit(QDate(first_next.year, first_next.month, first_next.day))
        self.start.setCalendarPopup(True)
        self.start.setDisplayFormat("yyyy-MM-dd")
        self.form.addRow("Customer", QLabel(f"{customer.name} — now on {customer.plan or 'no plan'} ({customer.currency})"))
        self.add_field("plan", "&Plan", self.plan, lambda: None if self.plan.currentData() != customer.plan else "Already on this plan",
                       "Only plans in the customer's currency are offered")
        self.add_field("start", "&From", self.start, tip="The new plan prices periods from this day; a start inside a period prorates base fees")
        self.plan.currentIndexChanged.connect(self.validate)
        self.validate()

    def work(self):
        customer, plan, start, actor = self.customer.id, self.plan.currentData(), self.start.date().toPython(), self.desk.actor()
        return lambda ledger, job: assign_plan(ledger, customer, plan, start=start, actor=actor)

    def _done(self, value) -> None:
        self.desk.notify_written("customers")
        super()._done(value)


class GrantCreditsDialog(FormDialog):
    """Top up a prepaid balance; the dialog's own request id makes a retry safe."""

    def __init__(self, desk: Desk, customer: CustomerOverview, parent: QWidget | None = None) -> None:
        super().__init__(desk, f"Grant credits to {customer.id}", "&Grant credits", parent)
        self.customer = customer
        self.request_id = f"gui-grant-{uuid.uuid4()}"
        self.amount = QLineEdit()
        self.amount.setPlaceholderText(f"amount in {customer.currency}, e.g. 100.00")
        self.note = QLineEdit()
        self.note.setPlaceholderText("Optional: payment reference, reason")
        balance = money_text(customer.balance, customer.currency) if customer.balance is not None else "—"
        self.form.addRow("Customer", QLabel(f"{customer.name} — balance {balance}"))
        self.add_field("amount", "&Amount", self.amount, lambda: self.problem_of(self._check_amount) if self.amount.text().strip() else "Enter an amount")
        self.add_field("note", "&Note", self.note)
        self.amount.textChanged.connect(self.validate)
        if not customer.prepaid:
            self.outcome.setText("This customer is invoiced at period close; credits apply to prepaid customers only.")
            self.outcome.setVisible(True)
        self.validate()

    def _check_amount(self):
        from decimal import Decimal

        return parse_decimal(self.amount.text(), "amount", max_places=6, minimum=Decimal(0), exclusive_minimum=True, maximum=Decimal(10) ** 15)

    def work(self):
        customer, amount, note, request_id, actor = self.customer.id, self.amount.text().strip(), self.note.text().strip() or None, self.request_id, self.desk.actor()
        return lambda ledger, job: grant_credits(ledger, customer, amount, request_id, note=note, source="gui", actor=actor)

    def _done(self, value) -> None:
        self.desk.notify_written("credits")
        super()._done(value)


class UnitDialog(FormDialog):
    """Define a unit; units cannot be changed once defined, so the form says so."""

    def __init__(self, desk: Desk, parent: QWidget | None = None) -> None:
        super().__init__(desk, "Define a unit", "&Define unit", parent)
        self.code = QLineEdit()
        self.code.setPlaceholderText("e.g. api_calls")
        self.name = QLineEdit()
        self.name.setPlaceholderText("e.g. API calls")
        self.decimals = QSpinBox()
        self.decimals.setRange(0, 6)
        self.aggregation = QComboBox()
        for value, text in (("sum", "sum — total of the amounts"), ("count", "count — number of entries"), ("max", "max — peak of the period (seats)")):
            self.aggregation.addItem(text, value)
        self.add_field("code", "&Code", self.code, lambda: self.problem_of(lambda: validate_unit_code(self.code.text())) or (
            "A unit with this code exists" if self.desk.catalog.unit(self.code.text()) else None))
        self.add_field("name", "&Name", self.name, lambda: self.problem_of(lambda: Unit("x", self.name.text())))
        self.add_field("decimals", "&Decimals", self.decimals, tip="How many decimal places a usage amount may carry (0..6)")
        self.add_field("aggregation", "&Aggregation", self.aggregation, tip="How a period's entries combine into the billed quantity")
        note = QLabel("Units cannot be changed once defined: the ledger's amounts depend on them.")
        note.setStyleSheet("color: #666;")
        self.form.addRow("", note)
        self.code.textChanged.connect(self.validate)
        self.name.textChanged.connect(self.validate)
        self.validate()

    def work(self):
        code, name, decimals, aggregation, actor = self.code.text(), self.name.text(), self.decimals.value(), self.aggregation.currentData(), self.desk.actor()
        return lambda ledger, job: add_unit(ledger, code, name, decimals, aggregation, actor=actor)

    def _done(self, value) -> None:
        self.desk.notify_written("catalog")
        super()._done(value)
