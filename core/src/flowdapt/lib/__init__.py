"""The original Flowdapt's ``flowdapt.lib`` modules that plugins and flowml import.

Thin modules over ours, with the original's names and signatures: :mod:`.logger`, :mod:`.errors`
and :mod:`.utils.misc`. Nothing in Flowdapt itself imports them.
"""
