package builtins

// policyDocs documents the source-based policy routing.
var policyDocs []Entry
