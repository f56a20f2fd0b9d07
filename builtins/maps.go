package builtins

// mapDocs documents the BPF map access from scripts.
var mapDocs []Entry
