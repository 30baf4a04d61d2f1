"""Which configs a change affects, read statically: no config is executed here."""
