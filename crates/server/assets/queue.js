// The queue page's script (see src/pages/queue.rs).
