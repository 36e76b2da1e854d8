"""Faces across the library: the performer gallery, track matching, clustering of unknown faces."""
