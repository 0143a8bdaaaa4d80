// The compose page's script (see src/pages/compose.rs).
