//! DATA decoder (in progress).
