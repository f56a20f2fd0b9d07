package builtins

// uxDocs documents the interactive helpers such as pause().
var uxDocs []Entry
