"""The XLM-R language table is the one source: generation's sampling weights and the filter's ISO codes follow it."""

from __future__ import annotations

from embtools.filter.language import LanguageCheck
from embtools.generate.placeholders import default_language_weights, parse_languages
from embtools.languages import ROMANIZED, XLMR_LANGUAGES, iso_code

GERMAN = "Die Impfung trainiert das Immunsystem, indem sie ihm einen harmlosen Teil eines Erregers zeigt."


def test_the_table_has_the_hundred_rows_of_the_paper():
    assert len(XLMR_LANGUAGES) == 100
    assert [lang.name for lang in XLMR_LANGUAGES].count("Burmese") == 2  # one row is the Zawgyi-font variant
    assert sum(lang.iso == ROMANIZED for lang in XLMR_LANGUAGES) == 5


def test_every_name_and_code_of_the_table_resolves_to_its_code():
    for lang in XLMR_LANGUAGES:
        expected = None if lang.iso == ROMANIZED else lang.iso
        assert iso_code(lang.name) == iso_code(lang.name.upper()) == expected, lang
        assert expected is None or iso_code(lang.iso) == expected
    assert iso_code("Klingon") is None and iso_code("") is None and iso_code(None) is None


def test_sampling_weights_cover_each_language_once():
    weights = default_language_weights()
    assert set(weights) == {lang.name for lang in XLMR_LANGUAGES} and len(weights) == 99
    assert abs(sum(weights.values()) - 1) < 1e-9
    assert parse_languages("my") == {"Burmese": 1.0}  # two rows, one language


def test_the_language_check_reads_the_same_table():
    check = LanguageCheck()
    record = {"task_type": "short-long", "language": "Burmese", "query": GERMAN, "positive": GERMAN}
    assert check(record).startswith("language: query looks like de")
    assert check({**record, "language": "German"}) is None
    assert check({**record, "language": "Hindi Romanized"}) is None  # romanized variants are not checked
