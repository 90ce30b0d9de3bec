// Package procgroup reads Linux process groups from /proc: which group a
// process belongs to, and which live processes a group holds. The agent
// uses it to find what a plugin left running, and the command method to
// stop what a program started.
package procgroup

import (
	"bytes"
	"os"
	"strconv"
	"strings"
)

// All maps each process group id to its live members.
func All() map[int][]int {
	groups := map[int][]int{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return groups
	}
	for _, d := range ents {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if pgid, ok := Of(pid); ok {
			groups[pgid] = append(groups[pgid], pid)
		}
	}
	return groups
}

// Members returns the live processes of group pgid.
func Members(pgid int) []int { return All()[pgid] }

// Of returns pid's process group id from /proc/<pid>/stat; ok is false for
// a process that is gone or a zombie (which cannot be killed any further).
// The command name (field 2) may hold spaces and parentheses, so fields
// are counted from the last ')'.
func Of(pid int) (pgid int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	fields := strings.Fields(string(b[i+1:]))
	// fields: state ppid pgrp ...
	if len(fields) < 3 || fields[0] == "Z" {
		return 0, false
	}
	pgid, err = strconv.Atoi(fields[2])
	return pgid, err == nil
}
