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

  --keep N   afterwards keep only the newest N archives made by the backup
             command, in the container and in $HOST_DIR/; other files are
             never deleted.
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

archive=$(sed -n 's/^Backup written: \([^ ]*\.tar\.gz\) .*/\1/p' "$log" | tail -n 1)
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

# Host-side retention: the same rule as the command's. An archive counts only when its
# name is backup_YYYYMMDD_HHMMSS.tar.gz and its manifest names the portal's format.
count=0
while IFS= read -r path; do
    case "$(basename "$path")" in
        backup_[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]_[0-9][0-9][0-9][0-9][0-9][0-9].tar.gz) ;;
        *) continue ;;
    esac
    if [ ! -f "$path" ] || [ -L "$path" ]; then
        continue
    fi
    manifest=$(tar -xzOf "$path" manifest.json 2>/dev/null) || manifest=""
    case "$manifest" in
        *'"format": "cpr-portal-backup"'*) ;;
        *) continue ;;
    esac
    count=$((count + 1))
    if [ "$count" -gt "$keep" ]; then
        rm -f -- "$path"
        echo "Deleted old backup $path"
    fi
done <<LIST
$(printf '%s\n' "$HOST_DIR"/backup_*.tar.gz | sort -r)
LIST
