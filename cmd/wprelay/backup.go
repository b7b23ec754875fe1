package main

// wprelay backup and wprelay restore: a consistent copy of the store while
// the sidecar serves (through the admin API: the serving process holds the
// file's exclusive lock, so no other process can open it), or directly from
// a stopped sidecar's data dir; and the way back.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/wprelay/wprelay/store"
)

// storeFile is the store's file name inside a data dir.
const storeFile = "wprelay.db"

const backupSynopsis = `Write a consistent copy of the store to FILE.

While the sidecar serves (the default), the copy comes from its admin API
(GET /admin/v1/backup): the file as one read transaction sees it, so it holds
every event acknowledged (202) before the backup began, while ingest and
deliveries go on. With --data-dir, the file of a stopped sidecar is copied
directly; a running sidecar holds the file's lock, and the command says so.

The copy goes to FILE.tmp, is synced to disk, checked (opened read-only, its
pages verified as "wprelay check" does) and only then renamed to FILE: FILE
is always the previous backup or a complete new one. Progress goes to stderr
once a copy takes more than a second.

The copy is page for page, as large as the data file (free pages included);
--compact rewrites it without them. A store sealed with encryption.keys stays
sealed: keep every key that sealed it with the backups.`

const backupExample = `  # hot, from the running sidecar (the token file that wprelay init wrote):
  wprelay backup --token-file /etc/wprelay/secrets/admin_token /var/backups/wprelay/wprelay.db

  # the same, token from the environment, the admin API elsewhere:
  WPRELAY_ADMIN_TOKEN=... wprelay backup --admin-url http://10.0.0.5:8081 wprelay-$(date +%F).db

  # the sidecar is stopped: copy its data dir directly
  wprelay backup --data-dir /var/lib/wprelay /var/backups/wprelay/wprelay.db`

func cmdBackup(args []string, stdout, stderr io.Writer) error {
	fs, cf := newClientFlags("backup FILE [flags]", backupSynopsis, backupExample, stderr)
	dataDir := fs.String("data-dir", "", "copy "+storeFile+" of a stopped sidecar from this data dir, instead of asking the running one")
	compact := fs.Bool("compact", false, "write the copy without free pages (smaller, takes longer)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return usageError{errors.New("want one FILE to write the backup to (see --help)")}
	}
	dst := pos[0]
	if fi, err := os.Stat(dst); err == nil && fi.IsDir() {
		return usageError{fmt.Errorf("%s is a directory: name the backup file, e.g. %s", dst, filepath.Join(dst, storeFile))}
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	tmp := dst + ".tmp"
	meter := newCopyMeter(stderr, "backup")
	if *dataDir != "" {
		err = backupFromDir(*dataDir, tmp, meter)
	} else {
		err = backupFromAPI(ctx, cf, tmp, meter)
	}
	meter.done()
	if err == nil && *compact {
		err = compactFile(tmp, stderr)
	}
	var sum storeSummary
	if err == nil {
		if sum, err = checkStoreFile(tmp); err != nil {
			err = fmt.Errorf("the copy failed its check, so %s was left as it was: %w", dst, err)
		}
	}
	if err == nil {
		err = replaceFile(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	fmt.Fprintf(stdout, "%s: %s, %s; checked\n", dst, humanBytes(sum.Size), sum)
	return nil
}

// backupFromAPI streams GET /admin/v1/backup into path and syncs it.
func backupFromAPI(ctx context.Context, cf *clientFlags, path string, meter *copyMeter) error {
	c, err := cf.client()
	if err != nil {
		return err
	}
	// --timeout bounds the wait for the answer to start; the copy itself
	// takes as long as the file needs.
	c.http = &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, ResponseHeaderTimeout: cf.timeout}}
	resp, err := c.send(ctx, http.MethodGet, "/admin/v1/backup", nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.ContentLength < 0 {
		return errors.New("the admin API sent no Content-Length, so a cut copy could not be told from a whole one; is --admin-url a wprelay admin listener?")
	}
	meter.total = resp.ContentLength
	n, err := writeSynced(path, func(w io.Writer) (int64, error) { return io.Copy(w, resp.Body) }, meter)
	if err == nil && n != resp.ContentLength {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		if ctx.Err() != nil {
			return errors.New("interrupted; no backup was written")
		}
		return fmt.Errorf("the copy ended after %d of %d bytes (%w): the sidecar stopped or abandoned it, see its log", n, resp.ContentLength, err)
	}
	return nil
}

// backupFromDir copies the store of a stopped sidecar into path.
func backupFromDir(dataDir, path string, meter *copyMeter) error {
	src := filepath.Join(dataDir, storeFile)
	if locked, _ := store.Locked(src); locked {
		return fmt.Errorf("a running wprelay holds %s: back it up through its admin API instead (wprelay backup without --data-dir)", src)
	}
	db, err := store.OpenReadOnly(src, store.Options{LockTimeout: time.Second})
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = writeSynced(path, func(w io.Writer) (int64, error) {
		return db.Backup(w, func(size int64) error { meter.total = size; return nil })
	}, meter)
	return err
}

// writeSynced creates path (mode 0600), fills it with fill through meter,
// and syncs it to disk before closing it.
func writeSynced(path string, fill func(io.Writer) (int64, error), meter *copyMeter) (int64, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := fill(io.MultiWriter(f, meter))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// compactFile rewrites the store file at path without free pages,
// reporting its progress on w.
func compactFile(path string, w io.Writer) error {
	out := path + ".compact"
	os.Remove(out)
	if err := compactStore(out, path, w); err != nil {
		os.Remove(out)
		return err
	}
	return os.Rename(out, path)
}

// replaceFile renames tmp over dst and syncs the directory, so that the
// rename itself survives a crash.
func replaceFile(tmp, dst string) error {
	if err := os.Rename(tmp, dst); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dst))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// storeSummary describes a checked store file.
type storeSummary struct {
	Size    int64
	Events  int
	Pending int // deliveries pending, in flight or retrying
	Dead    int
}

func (s storeSummary) String() string {
	return fmt.Sprintf("%s, %s pending, %d dead", plural(s.Events, "event", "events"), plural(s.Pending, "delivery", "deliveries"), s.Dead)
}

// checkStoreFile opens a store file read-only, verifies its pages and
// schema, and counts what it holds.
func checkStoreFile(path string) (storeSummary, error) {
	db, err := store.OpenReadOnly(path, store.Options{LockTimeout: time.Second})
	if err != nil {
		return storeSummary{}, err
	}
	defer db.Close()
	if err := db.Check(); err != nil {
		return storeSummary{}, err // store file damaged: … (see the runbook)
	}
	st, err := db.Stats(context.Background())
	if err != nil {
		return storeSummary{}, err
	}
	sum := storeSummary{Size: db.Size(), Pending: st.Pending, Dead: st.Dead}
	for _, n := range st.Events {
		sum.Events += n
	}
	return sum, nil
}

const restoreSynopsis = `Put a backup in place as the store of the data dir --data-dir. Run it while the
sidecar is stopped: it refuses while a sidecar holds the data dir's store.

FILE is checked first (opened read-only, pages and schema verified); nothing
changes when it fails. It is then copied next to the store, synced, checked
again and renamed into place. The store it replaces is kept as wprelay.db.bak,
unless --force (an older .bak is never overwritten: without --force, restore
refuses while one is there). Run it as the user the
sidecar runs as; as root, the new file gets the data dir's owner.

After the restart, deliveries that were pending in the backup are attempted
again (receivers dedupe on Idempotency-Key); events acknowledged after the
backup was taken are not in it (see docs/runbooks/backup-and-restore.md).`

const restoreExample = `  systemctl stop wprelay
  wprelay restore /var/backups/wprelay/wprelay.db --data-dir /var/lib/wprelay
  systemctl start wprelay

  # shrink a data file that grew: a compact copy of itself (sidecar stopped)
  wprelay restore /var/lib/wprelay/wprelay.db --data-dir /var/lib/wprelay --compact`

func cmdRestore(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("restore FILE --data-dir DIR", restoreSynopsis, restoreExample, stderr)
	dataDir := fs.String("data-dir", "", "the data dir whose "+storeFile+" is replaced (required)")
	force := fs.Bool("force", false, "replace the store without keeping it as "+storeFile+".bak (needed when a .bak from an earlier restore is still there)")
	compact := fs.Bool("compact", false, "write the restored store without free pages (smaller, takes longer)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *dataDir == "" {
		fs.Usage()
		return usageError{errors.New("want a backup FILE and --data-dir DIR (see --help)")}
	}
	src, dir := pos[0], *dataDir
	cur := filepath.Join(dir, storeFile)
	bak, tmp := cur+".bak", cur+".restore.tmp"
	if same(src, cur) && !*compact {
		return usageError{fmt.Errorf("%s is the data dir's own store; pass --compact to rewrite it, or name a backup", src)}
	}

	sum, err := checkStoreFile(src)
	if err != nil {
		return fmt.Errorf("%s cannot be restored, nothing was changed: %w", src, err)
	}
	if err := refuseLocked(cur); err != nil {
		return err
	}
	_, curErr := os.Stat(cur)
	haveCur := curErr == nil
	if _, err := os.Stat(bak); err == nil && haveCur && !*force {
		return usageError{fmt.Errorf("%s exists from an earlier restore: move it away, or pass --force to replace %s without keeping a .bak", bak, cur)}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}

	os.Remove(tmp)
	meter := newCopyMeter(stderr, "restore")
	meter.total = sum.Size
	if *compact {
		err = compactStore(tmp, src, stderr)
	} else {
		err = copyStoreFile(src, tmp, meter)
	}
	meter.done()
	if err == nil {
		err = chownLike(tmp, dir)
	}
	if err == nil {
		if sum, err = checkStoreFile(tmp); err != nil {
			err = fmt.Errorf("the copy in %s failed its check: %w", dir, err)
		}
	}
	if err == nil {
		err = refuseLocked(cur) // a sidecar may have started meanwhile
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if haveCur && !*force {
		if err := os.Rename(cur, bak); err != nil {
			os.Remove(tmp)
			return err
		}
	}
	if err := replaceFile(tmp, cur); err != nil {
		return err
	}
	kept := ""
	if haveCur && !*force {
		kept = "; the store it replaced is " + bak
	}
	fmt.Fprintf(stdout, "restored %s into %s: %s, %s%s.\nStart the sidecar now (systemctl start wprelay).\n", src, cur, humanBytes(sum.Size), sum, kept)
	return nil
}

// refuseLocked fails when a sidecar serves the store at path.
func refuseLocked(path string) error {
	locked, err := store.Locked(path)
	if err != nil {
		return err
	}
	if locked {
		return fmt.Errorf("a running wprelay holds %s: stop it first (systemctl stop wprelay), then run this again; nothing was changed", path)
	}
	return nil
}

// same tells whether a and b name the same existing file.
func same(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

// copyStoreFile copies src to dst (mode 0600) and syncs it.
func copyStoreFile(src, dst string, meter *copyMeter) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	_, err = writeSynced(dst, func(w io.Writer) (int64, error) { return io.Copy(w, in) }, meter)
	return err
}

// copyMeter reports the progress of a long copy on w: nothing for a copy
// that ends within a second, then a line a second on a terminal (redrawn
// in place) or every ten seconds otherwise.
type copyMeter struct {
	w       io.Writer
	label   string
	total   int64 // bytes expected; 0 = unknown
	n       int64
	start   time.Time
	last    time.Time
	every   time.Duration
	tty     bool
	printed bool
}

func newCopyMeter(w io.Writer, label string) *copyMeter {
	m := &copyMeter{w: w, label: label, start: time.Now(), every: 10 * time.Second}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			m.tty, m.every = true, time.Second
		}
	}
	m.last = m.start.Add(time.Second - m.every) // the first line after a second
	return m
}

func (m *copyMeter) Write(p []byte) (int, error) {
	m.n += int64(len(p))
	if now := time.Now(); now.Sub(m.last) >= m.every {
		m.last = now
		m.print(now)
	}
	return len(p), nil
}

func (m *copyMeter) print(now time.Time) {
	line := fmt.Sprintf("%s: %s", m.label, humanBytes(m.n))
	if m.total > 0 {
		line += fmt.Sprintf(" of %s (%d%%)", humanBytes(m.total), m.n*100/m.total)
	}
	if secs := now.Sub(m.start).Seconds(); secs > 0 {
		line += fmt.Sprintf(", %s/s", humanBytes(int64(float64(m.n)/secs)))
	}
	if m.tty {
		fmt.Fprintf(m.w, "\r%-70s", line)
	} else {
		fmt.Fprintln(m.w, line)
	}
	m.printed = true
}

// done prints the final count when progress was shown.
func (m *copyMeter) done() {
	if m.printed {
		m.print(time.Now())
		if m.tty {
			fmt.Fprintln(m.w)
		}
	}
}

// humanBytes formats n in binary units: 512 B, 1.5 KiB, 12.0 MiB.
func humanBytes(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	f, unit := float64(n)/1024, "KiB"
	for _, u := range []string{"MiB", "GiB", "TiB"} {
		if f < 1024 {
			break
		}
		f, unit = f/1024, u
	}
	return fmt.Sprintf("%.1f %s", f, unit)
}
