"""Built-in plugins, registered through the core's own ``flowdapt.plugins`` entry points."""
