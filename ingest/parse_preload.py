"""Imported once by the fork server that `ingest.parsing` starts, so that every worker forked from it
starts with the parsers imported and the tokenizer loaded (about 0.2 s each worker would pay again)."""

import pypdf  # noqa: F401  - the PDF loader imports it late, so that text-only runs never pay for it

from ingest.chunking import encoding

encoding()
