// Approvals, users and account pages: all through clarion.js's data-api helpers.
