#!/usr/bin/perl
# rt-user.pl NAME PRIVILEGED RIGHTS [QUEUE] - a user of a running test RT, made once, and a fresh auth token of
# theirs on stdout. RIGHTS: comma-separated RT rights, granted on QUEUE (made when missing, no SLA) or, without
# QUEUE, on the whole system. PRIVILEGED: 1 for staff, 0 for a client (an end user). Needs RT_SITE_CONFIG and
# RT_SITE_CONFIG_DIR, as rt-bootstrap.pl.
use strict;
use warnings;
use lib '/usr/local/share/request-tracker5/lib', '/usr/share/request-tracker5/lib';
use RT;

RT::LoadConfig();
RT::Init();
my ( $name, $privileged, $rights, $queue_name ) = @ARGV;
die "usage: rt-user.pl NAME PRIVILEGED RIGHTS [QUEUE]\n" unless defined $rights;
my $sys = RT->SystemUser;

my $object = RT->System;
if ( defined $queue_name && length $queue_name ) {
    my $queue = RT::Queue->new($sys);
    $queue->Load($queue_name);
    unless ( $queue->id ) {
        my ( $ok, $msg ) = $queue->Create( Name => $queue_name, Description => 'test queue' );
        die "rt-user: create queue $queue_name: $msg\n" unless $ok;
        my $cf = RT::CustomField->new($sys);
        $cf->LoadByName( Name => 'Site', LookupType => RT::Ticket->CustomFieldLookupType );
        $cf->AddToObject($queue) if $cf->id;
    }
    $object = $queue;
}

my $user = RT::User->new($sys);
$user->Load($name);
unless ( $user->id ) {
    my ( $ok, $msg ) = $user->Create( Name => $name, RealName => $name, EmailAddress => ( $name =~ /@/ ? $name : "$name\@example.com" ),
                                      Privileged => $privileged ? 1 : 0, Password => "$name-password" );
    die "rt-user: create user $name: $msg\n" unless $ok;
}
for my $right ( grep { length } split /,/, $rights ) {
    next if $user->PrincipalObj->HasRight( Right => $right, Object => $object );
    my ( $ok, $msg ) = $user->PrincipalObj->GrantRight( Right => $right, Object => $object );
    die "rt-user: grant $right: $msg\n" unless $ok;
}
# a token needs ManageAuthTokens at the time it is made; RT checks the right only then
my $had = $user->PrincipalObj->HasRight( Right => 'ManageAuthTokens', Object => RT->System );
$user->PrincipalObj->GrantRight( Right => 'ManageAuthTokens', Object => RT->System ) unless $had;
my $token = RT::AuthToken->new($sys);
my ( $id, $msg, $authstring ) = $token->Create( Owner => $user->id, Description => 'test token' );
die "rt-user: create token: $msg\n" unless $id;
$user->PrincipalObj->RevokeRight( Right => 'ManageAuthTokens', Object => RT->System ) unless $had;
print "$authstring\n";
