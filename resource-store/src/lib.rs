//! Job stores and the worker install.
