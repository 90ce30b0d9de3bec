package procgroup

import (
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"
)

func TestGroups(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	pid := cmd.Process.Pid
	if g, ok := Of(pid); !ok || g != pid {
		t.Errorf("Of(%d) = %d, %v; want its own group", pid, g, ok)
	}
	if m := Members(pid); !slices.Equal(m, []int{pid}) {
		t.Errorf("Members(%d) = %v, want just the sleep", pid, m)
	}
	if g, ok := Of(os.Getpid()); !ok || g == pid {
		t.Errorf("Of(self) = %d, %v", g, ok)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if _, ok := Of(pid); ok {
		t.Errorf("Of(%d) still finds the process after it was reaped", pid)
	}
	if m := Members(pid); len(m) != 0 {
		t.Errorf("Members of a gone group = %v", m)
	}
}
