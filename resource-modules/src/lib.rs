//! Python module discovery, virtualenv detection and `site-packages` scanning.
