package llama

// SetSDTP switches the prefill mode, keep ratio and KV policy of later
// calls, as if the model had been loaded with WithSDTP(o), without
// reloading the weights: only the staged engine's caches and the scorer
// are rebuilt (learned predictors are loaded again). It waits for a running
// call to finish. On error the previous settings stay in force. Errors are
// those of New for the same options (e.g. ErrUnsupportedArch, an unknown
// mode or KV policy).
//
// A server uses it to honour per-request pruning settings on a pooled
// *LLama; a program that never changes settings has no need for it.
func (l *LLama) SetSDTP(o SDTPOptions) error {
	if err := l.lock(); err != nil {
		return err
	}
	defer l.unlock()
	s, err := newStaged(l.path, l.model, l.ctx, o, l.lora != nil)
	if err != nil {
		return err
	}
	if l.staged != nil {
		l.staged.free()
	}
	l.staged = s
	l.opts.SDTP = o
	// The new engine starts with empty caches; llama.cpp's context was
	// cleared by any staged call, so l.cached still describes it.
	return nil
}
