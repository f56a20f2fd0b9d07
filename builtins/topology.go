package builtins

// topologyDocs documents the topology builtins: bridges, routes, link settings.
var topologyDocs []Entry
