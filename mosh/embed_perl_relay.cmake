# cmake -DINPUT=relay.pl -DOUTPUT=perl_relay.cc -P embed_perl_relay.cmake
# Writes OUTPUT, the definition of mosh::kPerlRelay (mosh/perl_relay.h): INPUT's text as a raw
# string literal, without its leading comment and blank lines. OUTPUT is rewritten only when its
# text changes.
if(NOT INPUT OR NOT OUTPUT)
  message(FATAL_ERROR "usage: cmake -DINPUT=relay.pl -DOUTPUT=perl_relay.cc -P embed_perl_relay.cmake")
endif()
file(READ "${INPUT}" program)
string(REGEX REPLACE "^(#[^\n]*\n|\n)+" "" program "${program}")
if(program STREQUAL "")
  message(FATAL_ERROR "${INPUT}: no program after the leading comment")
endif()
string(FIND "${program}" ")PERL\"" delimiter)
if(NOT delimiter EQUAL -1)
  message(FATAL_ERROR "${INPUT} contains )PERL\", which would end the raw string literal")
endif()
file(CONFIGURE OUTPUT "${OUTPUT}" @ONLY CONTENT [=[
// Generated from mosh/relay.pl by mosh/embed_perl_relay.cmake: edit relay.pl, not this file.
#include "mosh/perl_relay.h"

namespace mconnect::mosh {

const char kPerlRelay[] = R"PERL(@program@)PERL";

}  // namespace mconnect::mosh
]=])
