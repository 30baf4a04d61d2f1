"""Published figures in configs/*/metafile.yml against the measured ones."""
