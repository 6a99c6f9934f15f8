//! Behaviour suite shared by both adapters.
