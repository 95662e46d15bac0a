package event

// QuoteArg shows one word of a line (an argument, a path, a comm, a host
// name) the way the text format does: plain words as they are, anything
// with a space, a quote, a backslash or a control character quoted with Go
// escapes, so that no process can fake columns or lines or write terminal
// escape codes through what it names itself. Other views of event lines
// (the tap) use it to show them exactly as the text format does.
func QuoteArg(s string) string { return quoteArg(s) }
