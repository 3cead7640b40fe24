"""Unit tests of ftctl.journal (a package so module names cannot clash with other test dirs)."""
