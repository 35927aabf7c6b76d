#!/usr/bin/env bash
# Start-up hook for the boky/postfix container, mounted at /docker-init.d/cpr-relay.sh.
# The image runs it after writing its own settings and before Postfix starts. It
#   1. applies every "name = value" line of relay.cf with `postconf -e`, and removes
#      with `postconf -X` each setting that an earlier start applied from relay.cf and
#      that relay.cf no longer contains;
#   2. rewrites the envelope sender of every message to the address in
#      DEFAULT_FROM_EMAIL, after checking that its domain is in ALLOWED_SENDER_DOMAINS.
# A failure stops the container's start-up, and the log gives the reason.
#
# The image declares /etc/postfix a volume, so main.cf keeps what earlier starts wrote
# until the container is recreated with --renew-anon-volumes. The names applied from
# relay.cf are recorded in CPR_POSTFIX_STATE_FILE, in that volume, which is how step 1
# finds the settings to remove.
#
# The image sources executable hooks into its own start-up shell and runs the others
# with bash. Both work: the steps run in subshells, so nothing here changes the
# caller's shell options or variables.

cpr_relay_apply_settings() (
    set -euo pipefail
    local config_dir="${CPR_POSTFIX_CONFIG_DIR:-/etc/cpr-postfix}"
    local settings_file="$config_dir/relay.cf"
    local state_file="${CPR_POSTFIX_STATE_FILE:-/etc/postfix/cpr-relay.keys}"
    local line name old_name
    local -a lines=() names=()

    if [[ ! -r "$settings_file" ]]; then
        echo "cpr-relay: $settings_file is missing; mount postfix/relay.cf there." >&2
        return 1
    fi
    while IFS= read -r line || [[ -n "$line" ]]; do
        # Skip comments and blank lines.
        [[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
        name="${line%%=*}"
        lines+=("$line")
        names+=("${name//[[:space:]]/}")
    done <"$settings_file"

    if [[ -r "$state_file" ]]; then
        while IFS= read -r old_name; do
            [[ -z "$old_name" ]] && continue
            [[ " ${names[*]-} " == *" $old_name "* ]] && continue
            # The image has just written a POSTFIX_<name> variable's value; keep it.
            if [[ -n "$(printenv "POSTFIX_$old_name" || true)" ]]; then
                continue
            fi
            echo "cpr-relay: postconf -X '$old_name' (no longer in relay.cf)"
            postconf -X "$old_name"
        done <"$state_file"
    fi
    for line in "${lines[@]+"${lines[@]}"}"; do
        echo "cpr-relay: postconf -e '$line'"
        postconf -e "$line"
    done
    printf '%s\n' "${names[@]+"${names[@]}"}" >"$state_file"
)

cpr_relay_pin_envelope_sender() (
    set -euo pipefail
    local from="${DEFAULT_FROM_EMAIL:-}"
    local address domain

    # "Code Puerto Rico <info@code.pr>" -> info@code.pr; a bare address stays as it is.
    if [[ "$from" == *"<"*">"* ]]; then
        address="${from##*<}"
        address="${address%%>*}"
    else
        address="$from"
    fi
    address="${address//[[:space:]]/}"
    if [[ "$address" != ?*@?* ]]; then
        echo "cpr-relay: DEFAULT_FROM_EMAIL must contain an email address, got '$from'." >&2
        return 1
    fi
    domain="${address##*@}"
    if [[ " ${ALLOWED_SENDER_DOMAINS:-} " != *" $domain "* ]]; then
        echo "cpr-relay: the sender domain $domain (from DEFAULT_FROM_EMAIL) is not in" \
            "ALLOWED_SENDER_DOMAINS ('${ALLOWED_SENDER_DOMAINS:-}'), so Postfix would" \
            "reject every message. Add it to ALLOWED_SENDER_DOMAINS." >&2
        return 1
    fi
    echo "cpr-relay: envelope sender of every message set to $address"
    postconf -e "sender_canonical_classes = envelope_sender"
    postconf -e "sender_canonical_maps = static:$address"
)

# One simple command at the top level, so that its failure fails a `bash` run and also
# stops a caller that sourced this file under `set -e`.
cpr_relay_main() (
    set -e
    cpr_relay_apply_settings
    cpr_relay_pin_envelope_sender
)

cpr_relay_main
