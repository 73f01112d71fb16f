# fish completion for mconnect(1): options, subcommands and host names.
#
# Options come from `mconnect [SUBCOMMAND] --help` itself; host names from fish's own
# __fish_print_hostnames (ssh config Host lines, Includes, known_hosts) plus the hosts of the
# masters running now (`mconnect status --json`).

set -l __mconnect_subcommands status stop ip ssh-config doctor master

function __mconnect_subcommand
    set -l words (commandline -opc)
    if test (count $words) -ge 2; and contains -- $words[2] status stop ip ssh-config doctor master
        echo $words[2]
    end
end

# The option words that begin a line of the help, without their =VALUE or trailing comma.
function __mconnect_options
    set -l sub (__mconnect_subcommand)
    for line in (mconnect $sub --help 2>/dev/null)
        for word in (string split -n ' ' -- $line)
            set word (string replace -r '[=,].*$' '' -- $word)
            string match -qr '^--?[A-Za-z0-9][-A-Za-z0-9]*$' -- $word; or break
            echo $word
        end
    end | sort -u
end

function __mconnect_hosts
    mconnect status --json 2>/dev/null | string match -ar '"host":"[^"]*"' | string replace -r '"host":"([^"]*)"' '$1'
    __fish_print_hostnames
end

complete -c mconnect -f
complete -c mconnect -n 'string match -q -- "-*" (commandline -ct)' -a '(__mconnect_options)'
complete -c mconnect -n "not __fish_seen_subcommand_from $__mconnect_subcommands; and test (count (commandline -opc)) -eq 1" \
    -a "$__mconnect_subcommands" -d subcommand
complete -c mconnect -n 'not string match -q -- "-*" (commandline -ct); and test "$(__mconnect_subcommand)" != status' \
    -a '(__mconnect_hosts)' -d host
