package builtins

// limitDocs documents the run bounds.
var limitDocs []Entry
