#!/usr/bin/env bash
# Back up the portal that runs in the Docker Compose stack: `manage.py backup` runs in
# the `web` service, and the archive is copied to ./backups/ (or CPR_BACKUP_HOST_DIR).
# Written for bash 3.2 and POSIX tools, so it runs on macOS and Debian alike.
set -eu
set -o pipefail

usage() {
    cat <<USAGE
Usage: scripts/backup.sh [--keep N]

Writes backup_YYYYMMDD_HHMMSS.tar.gz in the web container's $CONTAINER_DIR
and copies it to $HOST_DIR/.

  --keep N   afterwards keep only the newest N archives that the backup
             command made for this install, in the container and in
             $HOST_DIR/; other files are never deleted.
USAGE
}

fail_usage() {
    printf 'backup.sh: %s\n\n' "$1" >&2
    usage >&2
    exit 2
}

cd "$(dirname "$0")/.."
CONTAINER_DIR=/app/backups
HOST_DIR=${CPR_BACKUP_HOST_DIR:-backups}

keep=""
while [ $# -gt 0 ]; do
    case "$1" in
        --keep)
            [ $# -ge 2 ] || fail_usage "--keep needs a number"
            keep=$2
            shift 2
            ;;
        --keep=*)
            keep=${1#--keep=}
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            fail_usage "unknown argument '$1'"
            ;;
    esac
done
if [ -n "$keep" ]; then
    case "$keep" in
        *[!0-9]* | 0*) fail_usage "--keep takes a whole number of 1 or more, got '$keep'" ;;
    esac
fi

log=$(mktemp "${TMPDIR:-/tmp}/cpr-backup.XXXXXX")
trap 'rm -f "$log"' EXIT

if [ -n "$keep" ]; then
    docker compose exec -T web python manage.py backup --output "$CONTAINER_DIR" --keep "$keep" |
        tee "$log"
else
    docker compose exec -T web python manage.py backup --output "$CONTAINER_DIR" | tee "$log"
fi

# The summary line reads "Backup written: PATH (...)" in English; other languages
# translate the words before the colon only.
archive=$(sed -n 's/^[^:]*: \([^ ]*\.tar\.gz\) (.*/\1/p' "$log" | tail -n 1)
if [ -z "$archive" ]; then
    echo "backup.sh: the backup command did not report an archive path; nothing was copied." >&2
    exit 1
fi
name=$(basename "$archive")
mkdir -p "$HOST_DIR"
docker compose cp "web:$archive" "$HOST_DIR/$name"
echo "Copied to $HOST_DIR/$name"

if [ -z "$keep" ]; then
    exit 0
fi

# Host-side retention, by the same rule as the command's: the new archive stays, and of
# the others only those whose manifest has the new archive's install id count, newest
# first by the creation time in that manifest. File names and other files do not count.
manifest_field() {
    # The manifest is JSON with sorted keys and one top-level field a line, indented by
    # two spaces; deeper fields are indented more. Prints a hex string or number field.
    tar -xzOf "$1" manifest.json 2>/dev/null |
        sed -n "s/^  \"$2\": \"\{0,1\}\([0-9a-f]*\)\"\{0,1\},\{0,1\}\$/\1/p"
}

install_id=$(manifest_field "$HOST_DIR/$name" install_id) || install_id=""
if [ -z "$install_id" ]; then
    echo "backup.sh: $HOST_DIR/$name has no install id; no archive in $HOST_DIR was deleted." >&2
    exit 0
fi

candidates=$(mktemp "${TMPDIR:-/tmp}/cpr-backup-list.XXXXXX")
trap 'rm -f "$log" "$candidates"' EXIT
for path in "$HOST_DIR"/backup_*.tar.gz; do
    case "$(basename "$path")" in
        "$name") continue ;;
        backup_[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]_[0-9][0-9][0-9][0-9][0-9][0-9].tar.gz) ;;
        *) continue ;;
    esac
    if [ ! -f "$path" ] || [ -L "$path" ]; then
        continue
    fi
    [ "$(manifest_field "$path" install_id || true)" = "$install_id" ] || continue
    created=$(manifest_field "$path" created_unix_time) || created=""
    case "$created" in
        '' | *[!0-9]*) continue ;;
    esac
    printf '%s %s\n' "$created" "$path" >>"$candidates"
done

# The new archive is one of the N kept.
count=1
sort -r -n "$candidates" | while IFS=' ' read -r _created path; do
    count=$((count + 1))
    if [ "$count" -gt "$keep" ]; then
        if rm -f -- "$path"; then
            echo "Deleted old backup $path"
        fi
    fi
done
