"""Test helper shared by the data tests."""

import pytest

from privaudit.errors import DataError


def raises_data_error(*needles: str):
    """pytest.raises(DataError) that also checks the message is one line containing needles."""

    class _Ctx:
        def __enter__(self):
            self._cm = pytest.raises(DataError)
            self.info = self._cm.__enter__()
            return self.info

        def __exit__(self, *exc):
            handled = self._cm.__exit__(*exc)
            msg = str(self.info.value)
            assert "\n" not in msg, f"message is not one line: {msg!r}"
            for n in needles:
                assert n in msg, f"{n!r} not in {msg!r}"
            return handled

    return _Ctx()
