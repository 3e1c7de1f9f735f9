"""Stage code of Flowdapt's example workflows."""
