//! BDAT reader (in progress).
