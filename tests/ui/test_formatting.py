"""Money on screen: the user's locale, and en_US where the environment names none (the C or POSIX locale)."""

from decimal import Decimal

import pytest

from meterdesk.ui import formatting


@pytest.fixture
def locale_named(monkeypatch):
    def choose(name: str) -> None:
        monkeypatch.setenv("METERDESK_LOCALE", name)
        formatting.display_locale.cache_clear()

    yield choose
    formatting.display_locale.cache_clear()


@pytest.mark.parametrize("name", ["C", "POSIX", "C.UTF-8", "c.utf8"])
def test_no_locale_chosen_reads_as_en_us(locale_named, name):
    locale_named(name)
    assert str(formatting.display_locale()) == "en_US"
    assert formatting.money_text(Decimal("1234.5"), "EUR") == "€1,234.50"


def test_a_chosen_locale_is_kept(locale_named):
    locale_named("de_DE")
    assert formatting.money_text(Decimal("1234.5"), "EUR") == "1.234,50\xa0€"


def test_an_unknown_locale_falls_back_to_en_us(locale_named):
    locale_named("xx_YY")
    assert formatting.money_text(Decimal("17"), "EUR") == "€17.00"
