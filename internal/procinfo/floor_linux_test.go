package procinfo

import (
	"os/exec"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkExecFloor prices what an exec's description needs from /proc,
// for 64 live processes in turn:
//
//   - ReadExec: this package's read (exe, cwd, comm, cmdline, cgroup,
//     all relative to one /proc/<pid> descriptor);
//   - floor: the same system calls and nothing else (no parsing, no
//     strings), the kernel's price for those five answers;
//   - floor/<file>: each step of it on its own.
//
// It bounds what any /proc reader can gain per exec (docs/performance.md,
// "What an exec costs").
func BenchmarkExecFloor(b *testing.B) {
	var pids []int
	for range 64 {
		cmd := exec.Command("sleep", "3600")
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		pids = append(pids, cmd.Process.Pid)
	}
	names := make([]string, len(pids))
	for i, p := range pids {
		names[i] = strconv.Itoa(p)
	}
	root, err := unix.Open("/proc", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(root)
	buf := make([]byte, 8192)
	openDir := func(i int) int {
		fd, err := unix.Openat(root, names[i%len(names)], unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		return fd
	}
	readlink := func(dir int, name string) {
		if _, err := unix.Readlinkat(dir, name, buf); err != nil {
			b.Fatal(err)
		}
	}
	read := func(dir int, name string) {
		fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := unix.Read(fd, buf); err != nil {
			b.Fatal(err)
		}
		unix.Close(fd)
	}
	b.Run("ReadExec", func(b *testing.B) {
		var r Reader
		defer r.Close()
		for i := 0; b.Loop(); i++ {
			if in, err := r.ReadExec(uint32(pids[i%len(pids)]), nil); err != nil || in.Gone {
				b.Fatal(in, err)
			}
		}
	})
	b.Run("floor", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			dir := openDir(i)
			readlink(dir, "exe")
			readlink(dir, "cwd")
			read(dir, "comm")
			read(dir, "cmdline")
			read(dir, "cgroup")
			unix.Close(dir)
		}
	})
	b.Run("floor/dir", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			unix.Close(openDir(i))
		}
	})
	dirs := make([]int, len(pids))
	for i := range dirs {
		dirs[i] = openDir(i)
		defer unix.Close(dirs[i])
	}
	for _, name := range []string{"exe", "cwd"} {
		b.Run("floor/"+name, func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				readlink(dirs[i%len(dirs)], name)
			}
		})
	}
	for _, name := range []string{"comm", "cmdline", "cgroup", "status"} {
		b.Run("floor/"+name, func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				read(dirs[i%len(dirs)], name)
			}
		})
	}
}
