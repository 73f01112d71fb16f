# bash completion for mconnect(1): options, subcommands and host names.
#
# Options come from `mconnect [SUBCOMMAND] --help` itself, so they never disagree with the
# program. Host names are the Host lines of ~/.ssh/config (and of the files it Includes) that
# hold no pattern character, plus the hosts of the masters running now (`mconnect status
# --json`).

# Prints the host names of one ssh config file and, recursively, of those it Includes
# (relative names are under ~/.ssh, as ssh reads them; globs allowed). $2 guards the depth.
_mconnect_config_hosts() {
    local file=$1 depth=${2:-0} keyword rest word included
    [[ -r $file && $depth -lt 8 ]] || return 0
    while read -r keyword rest; do
        case ${keyword,,} in
            host)
                for word in $rest; do
                    [[ $word == *[\*\?\!]* ]] || printf '%s\n' "$word"
                done
                ;;
            include)
                for word in $rest; do
                    [[ $word == ~/* ]] && word=$HOME/${word#\~/}
                    [[ $word == /* ]] || word=$HOME/.ssh/$word
                    for included in $word; do
                        _mconnect_config_hosts "$included" $((depth + 1))
                    done
                done
                ;;
        esac
    done <"$file"
}

_mconnect_hosts() {
    _mconnect_config_hosts "$HOME/.ssh/config"
    local json
    json=$(mconnect status --json 2>/dev/null) || return 0
    grep -o '"host":"[^"]*"' <<<"$json" | cut -d'"' -f4
}

# The option names that `mconnect [SUBCOMMAND] --help` lists: the option words that begin a
# line of the help (not those quoted in the descriptions).
_mconnect_options() {
    mconnect ${1:+"$1"} --help 2>/dev/null | awk '{
        for (i = 1; i <= NF; i++) {
            word = $i; sub(/[=,].*$/, "", word)
            if (word !~ /^--?[A-Za-z0-9][-A-Za-z0-9]*$/) break
            print word
        }
    }' | sort -u
}

_mconnect() {
    local cur=${COMP_WORDS[COMP_CWORD]}
    local subcommands='status stop ip ssh-config doctor master'
    local subcommand='' word
    if ((COMP_CWORD > 1)); then
        for word in $subcommands; do
            [[ ${COMP_WORDS[1]} == "$word" ]] && subcommand=$word
        done
    fi
    COMPREPLY=()
    if [[ $cur == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$(_mconnect_options "$subcommand")" -- "$cur")
        return 0
    fi
    # A word after an option that takes a separate value is that value: nothing to offer.
    case ${COMP_WORDS[COMP_CWORD - 1]} in
        -p | --port | --ssh | --server | --client | --remote-ip | --persist | --socket | --config | --mux | \
            --predict | --family | --bind-server | --experimental-remote-ip)
            return 0
            ;;
    esac
    [[ $subcommand == status ]] && return 0
    local candidates
    candidates=$(_mconnect_hosts | sort -u)
    ((COMP_CWORD == 1)) && candidates+=" $subcommands"
    local user=''
    if [[ $cur == *@* ]]; then
        user=${cur%@*}@
        cur=${cur##*@}
    fi
    mapfile -t COMPREPLY < <(compgen -P "$user" -W "$candidates" -- "$cur")
    return 0
}

complete -F _mconnect mconnect
