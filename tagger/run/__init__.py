"""A run: its context, analysis executors (here, Ray), the modes."""
