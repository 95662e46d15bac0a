package daemon

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
)

// WatchConfig watches the directory holding path and sends on trigger,
// debounced, when path may have changed: an in-place write, an editor's
// rename-swap, `sed -i`, delete-and-recreate, or a Kubernetes ConfigMap's
// "..data" symlink swap (which changes what path resolves to). It returns
// when ctx ends.
func WatchConfig(ctx context.Context, path string, debounce time.Duration, trigger chan<- struct{}, log *zap.Logger) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch config: %w", err)
	}
	defer w.Close()
	dir := filepath.Dir(path)
	if err := w.Add(dir); err != nil {
		return fmt.Errorf("watch config directory %s: %w", dir, err)
	}
	name := filepath.Base(path)
	resolved, _ := filepath.EvalSymlinks(path)
	var timer *time.Timer
	var fire <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			log.Warn("config watch error", zap.Error(err))
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			base := filepath.Base(ev.Name)
			relevant := base == name || base == "..data"
			if !relevant {
				// A symlink swap elsewhere in the directory may change
				// what path resolves to.
				if r, _ := filepath.EvalSymlinks(path); r != resolved {
					relevant = true
				}
			}
			if !relevant || ev.Op == fsnotify.Chmod {
				continue
			}
			if timer == nil {
				timer = time.NewTimer(debounce)
			} else {
				timer.Reset(debounce)
			}
			fire = timer.C
		case <-fire:
			fire = nil
			resolved, _ = filepath.EvalSymlinks(path)
			select {
			case trigger <- struct{}{}:
			default: // a reload is already pending
			}
		}
	}
}
