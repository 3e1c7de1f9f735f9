"""The original's ``flowdapt.lib.utils`` (see :mod:`.misc`)."""
