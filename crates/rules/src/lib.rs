//! Ordered SMTP acceptance and routing rules (filled by the postern-rules issue).
