"""The emulator's sign-in page escapes every value it writes into HTML, attributes included."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest

from localdev.emulator.signin import BrowserSignIn

pytestmark = pytest.mark.unit


def test_the_sign_in_page_escapes_keys_names_and_upns() -> None:
    person = SimpleNamespace(key='person:x" onfocus="alert(1)', upn="<u>@contoso.com", name="<b>Eve</b>")
    emu = SimpleNamespace(directory=SimpleNamespace(people=[person]))
    page = BrowserSignIn(cast(Any, SimpleNamespace(emu=emu)))
    response = page._page(cast(Any, SimpleNamespace(query_string=b"", path="/authorize")), "", 200)
    body = response.get_data(as_text=True)
    assert 'value="x&quot; onfocus=&quot;alert(1)"' in body
    assert 'id="upn-x&quot; onfocus=&quot;alert(1)"' in body
    assert "&lt;b&gt;Eve&lt;/b&gt;" in body and "&lt;u&gt;@contoso.com" in body
    assert 'onfocus="' not in body and "<b>" not in body
