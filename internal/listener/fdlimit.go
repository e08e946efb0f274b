package listener

// CapConnections returns conns, lowered to three quarters of fileLimit, the
// process's limit on open files, so that client connections leave a quarter
// of it to the admin listener, backend connections and files. fileLimit 0
// means no limit.
func CapConnections(conns int, fileLimit uint64) int {
	if fileLimit == 0 {
		return conns
	}
	c := max(fileLimit-fileLimit/4, 1)
	if conns > 0 && uint64(conns) > c {
		return int(c)
	}
	return conns
}
