// The calendar page's script (see src/pages/calendar.rs).
