//! Outbound SMTP client (work in progress).
