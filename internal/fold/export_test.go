package fold

// NewBounded returns a folder of at most max lives.
func NewBounded(max int) *Folder { return newFolder(max) }

// OrderLen is the length of the opening order.
func (f *Folder) OrderLen() int { return f.orderLen() }
