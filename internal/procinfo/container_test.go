package procinfo

import (
	"strings"
	"testing"
)

func TestContainerID(t *testing.T) {
	const (
		id  = "c5f0b2e3d1a94f8e7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a"
		pod = "pod8c2f4a1e_3b5d_4c7e_9f1a_2b4c6d8e0f1a"
	)
	tests := []struct {
		name, path, want string
	}{
		{"docker systemd driver", "/system.slice/docker-" + id + ".scope", id},
		{"docker cgroupfs driver", "/docker/" + id, id},
		{"docker, systemd inside the container", "/system.slice/docker-" + id + ".scope/system.slice/nginx.service", id},
		{"docker under kubepods (dockershim)", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-" + pod + ".slice/docker-" + id + ".scope", id},
		{"containerd CRI burstable", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-" + pod + ".slice/cri-containerd-" + id + ".scope", id},
		{"containerd CRI guaranteed", "/kubepods.slice/kubepods-" + pod + ".slice/cri-containerd-" + id + ".scope", id},
		{"kubelet cgroupfs driver", "/kubepods/burstable/pod8c2f4a1e-3b5d-4c7e-9f1a-2b4c6d8e0f1a/" + id, id},
		{"kubelet cgroupfs driver besteffort", "/kubepods/besteffort/pod8c2f4a1e-3b5d-4c7e-9f1a-2b4c6d8e0f1a/" + id, id},
		{"cri-o", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-" + pod + ".slice/crio-" + id + ".scope", id},
		{"cri-o cgroupfs driver", "/kubepods/burstable/pod8c2f4a1e-3b5d-4c7e-9f1a-2b4c6d8e0f1a/crio-" + id, id},
		{"cri-o conmon is not the container", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-" + pod + ".slice/crio-conmon-" + id + ".scope", ""},
		{"podman as root", "/machine.slice/libpod-" + id + ".scope", id},
		{"podman, nested container cgroup", "/machine.slice/libpod-" + id + ".scope/container", id},
		{"podman conmon is not the container", "/machine.slice/libpod-conmon-" + id + ".scope", ""},
		{"rootless podman", "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + id + ".scope", id},
		{"podman cgroupfs", "/libpod_parent/libpod-" + id, id},
		{"seen from a cgroup namespace", "/../../docker-" + id + ".scope", id},
		{"docker in docker: the inner one", "/system.slice/docker-" + id + ".scope/docker/0000000000000000000000000000000000000000000000000000000000000001", "0000000000000000000000000000000000000000000000000000000000000001"},
		{"no leading slash", "docker-" + id + ".scope", id},

		{"root", "/", ""},
		{"empty", "", ""},
		{"session", "/user.slice/user-1000.slice/session-3.scope", ""},
		{"system service", "/system.slice/sshd.service", ""},
		{"init", "/init.scope", ""},
		{"user manager", "/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome-firefox-4242.scope", ""},
		{"kubepods pod slice", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-" + pod + ".slice", ""},
		{"docker daemon itself", "/system.slice/docker.service", ""},
		{"id too short", "/docker/" + id[:63], ""},
		{"id too long", "/docker/" + id + "0", ""},
		{"uppercase hex", "/docker/" + strings.ToUpper(id), ""},
		{"not hex", "/docker/" + id[:63] + "g", ""},
		{"unknown prefix", "/system.slice/rkt-" + id + ".scope", ""},
		{"prefix without id", "/system.slice/docker-.scope", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ContainerID(tt.path); got != tt.want {
				t.Errorf("ContainerID(%q) = %q, want %q", tt.path, got, tt.want)
			}
		})
	}
}

func TestContainerIDAllocs(t *testing.T) {
	p := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-" +
		strings.Repeat("ab", 32) + ".scope"
	if got := testing.AllocsPerRun(100, func() { _ = ContainerID(p) }); got != 0 {
		t.Errorf("ContainerID allocates %v times, want 0", got)
	}
}

func FuzzContainerID(f *testing.F) {
	f.Add("/system.slice/docker-" + strings.Repeat("0f", 32) + ".scope")
	f.Add("/kubepods/burstable/pod1/" + strings.Repeat("a", 64))
	f.Add("/user.slice/user-1000.slice/session-3.scope")
	f.Add("/")
	f.Fuzz(func(t *testing.T, p string) {
		id := ContainerID(p)
		if id != "" && (!isID(id) || !strings.Contains(p, id)) {
			t.Errorf("ContainerID(%q) = %q, not an id from the path", p, id)
		}
	})
}

func BenchmarkContainerID(b *testing.B) {
	p := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-" +
		strings.Repeat("ab", 32) + ".scope"
	b.ReportAllocs()
	for b.Loop() {
		_ = ContainerID(p)
	}
}
