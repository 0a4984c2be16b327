#!/usr/bin/perl
# rt-bulk.pl USER QUEUE COUNT PREFIX - COUNT tickets made as USER in QUEUE (subject "PREFIX-<n> ..."), for
# benchmarks; prints "<n> <ticket id>" per ticket. Needs RT_SITE_CONFIG and RT_SITE_CONFIG_DIR.
use strict;
use warnings;
use lib '/usr/local/share/request-tracker5/lib', '/usr/share/request-tracker5/lib';
use RT;

RT::LoadConfig();
RT::Init();
my ( $name, $queue, $count, $prefix ) = @ARGV;
my $user = RT::CurrentUser->new;
$user->Load($name) or die "rt-bulk: no user $name\n";
$| = 1;
for my $n ( 1 .. $count ) {
    my $ticket = RT::Ticket->new($user);
    my ( $id, undef, $msg ) = $ticket->Create( Queue => $queue, Subject => "[wpfleet $prefix-$n] bench ticket $n",
                                               Priority => 50, Content => "bench" );
    die "rt-bulk: ticket $n: $msg\n" unless $id;
    print "$n $id\n";
}
