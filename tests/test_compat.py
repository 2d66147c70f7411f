"""RecBole 1.2.1 on today's stack: the workarounds in compat.py."""


def test_numpy_aliases_restored(monkeypatch):
    """NumPy 2 removed ``np.float_``/``complex_``/``unicode_``; RecBole's Config assigns from them."""
    import numpy as np

    from recbole_genni.compat import restore_numpy_aliases

    for name in ("float_", "complex_", "unicode_"):
        monkeypatch.delattr(np, name, raising=False)
    restore_numpy_aliases()
    assert (np.float_, np.complex_, np.unicode_) == (np.float64, np.complex128, np.str_)


def test_other_recbole_release_warns(caplog):
    from recbole_genni.compat import RECBOLE_VERSION, check_recbole_version

    with caplog.at_level("WARNING"):
        check_recbole_version(RECBOLE_VERSION)
        assert not caplog.records
        check_recbole_version("1.3.0")
    assert "RecBole 1.3.0 is installed" in caplog.text and f"recbole=={RECBOLE_VERSION}" in caplog.text
