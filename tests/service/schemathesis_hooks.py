"""Schemathesis hooks (SCHEMATHESIS_HOOKS) for test_fuzz's stateful run: file fields (``format: binary``)
get real small images as well as random bytes, so a registration can succeed and its link be followed."""

from __future__ import annotations

import schemathesis
from hypothesis import strategies as st

from tests.service.test_fuzz import IMAGES

schemathesis.openapi.format("binary", st.one_of(st.sampled_from(IMAGES), st.binary(max_size=256)))
