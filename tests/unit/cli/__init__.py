"""Unit tests of ftctl.cli (a package so module names cannot clash with other test dirs)."""
