package builtins

// attachDocs documents the program attachment order, chains, XDP and tracing.
var attachDocs []Entry
