package control

// ParseEvent exposes parseEvent to the tests of package control_test.
var ParseEvent = parseEvent
