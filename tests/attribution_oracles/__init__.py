"""Test oracles: the plain-Python reference attribution engine and the hand-built edge cases every engine is held to."""
