// The inbox page's script (see src/pages/inbox.rs).
