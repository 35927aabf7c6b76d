#!/usr/bin/env bash
# Restore the portal that runs in the Docker Compose stack from an archive made by
# scripts/backup.sh: the archive is sent into the `web` service and `manage.py restore`
# runs there. A safety backup that the restore writes is copied back to ./backups/.
# Written for bash 3.2 and POSIX tools, so it runs on macOS and Debian alike.
set -eu
set -o pipefail

usage() {
    cat <<USAGE
Usage: scripts/restore.sh ARCHIVE [--force]

ARCHIVE is a path, or the name of a file in $HOST_DIR/, for example
backup_20260101_020000.tar.gz.

  --force   replace a database that already holds data; a safety backup
            (pre_restore_YYYYMMDD_HHMMSS.tar.gz) is written first and copied
            to $HOST_DIR/.
USAGE
}

fail_usage() {
    printf 'restore.sh: %s\n\n' "$1" >&2
    usage >&2
    exit 2
}

CONTAINER_DIR=/app/backups
# Relative to the project folder, where docker-compose.yml is.
HOST_DIR=${CPR_BACKUP_HOST_DIR:-backups}
project_dir=$(cd "$(dirname "$0")/.." && pwd)
case "$HOST_DIR" in
    /*) host_dir_path=$HOST_DIR ;;
    *) host_dir_path=$project_dir/$HOST_DIR ;;
esac

archive=""
force=""
while [ $# -gt 0 ]; do
    case "$1" in
        --force) force=--force ;;
        -h | --help)
            usage
            exit 0
            ;;
        -*) fail_usage "unknown option '$1'" ;;
        *)
            [ -z "$archive" ] || fail_usage "give one archive, got '$archive' and '$1'"
            archive=$1
            ;;
    esac
    shift
done
[ -n "$archive" ] || fail_usage "missing ARCHIVE"

# A path is taken from the folder the script was started in; a bare name may also be
# in HOST_DIR.
if [ ! -f "$archive" ]; then
    case "$archive" in
        */*) ;;
        *) [ -f "$host_dir_path/$archive" ] && archive="$host_dir_path/$archive" ;;
    esac
fi
if [ ! -f "$archive" ]; then
    fail_usage "archive '$archive' not found (looked in $(pwd) and in $HOST_DIR/)"
fi
case "$archive" in
    /*) ;;
    *) archive="$(pwd)/$archive" ;;
esac
cd "$project_dir"

# Streamed through `exec` rather than `docker compose cp`, because cp would create the
# file as root and the archive's 0600 mode would keep the web service's user out.
upload="$CONTAINER_DIR/.restore-$(basename "$archive")"
docker compose exec -T web sh -c 'umask 077 && cat > "$0"' "$upload" <"$archive"

log=$(mktemp "${TMPDIR:-/tmp}/cpr-restore.XXXXXX")
trap 'rm -f "$log"' EXIT

status=0
if [ -n "$force" ]; then
    docker compose exec -T web python manage.py restore "$upload" --force | tee "$log" ||
        status=$?
else
    docker compose exec -T web python manage.py restore "$upload" | tee "$log" || status=$?
fi
docker compose exec -T web rm -f "$upload" || true

# The restore prints "Safety backup written: PATH" in the operator's language (LANG or
# CPR_COMMAND_LANGUAGE in the container), so only the file name that ends the line is
# matched, never the words before it.
safety=$(sed -n 's/^.* \([^ ]*pre_restore_[0-9]\{8\}_[0-9]\{6\}\.tar\.gz\)$/\1/p' "$log" |
    tail -n 1)
if [ -n "$safety" ]; then
    mkdir -p "$HOST_DIR"
    docker compose cp "web:$safety" "$HOST_DIR/$(basename "$safety")"
    echo "Safety backup copied to $HOST_DIR/$(basename "$safety")"
fi
exit "$status"
